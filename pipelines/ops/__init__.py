"""Operations: the steps put together.

- ``cycle``: the whole daily cycle once (`make run`) and its summary;
- ``stages``: dvc.yaml's stages through the real dvc CLI;
- ``promote``: promotion under the registry lock, judged again if the champion moved, then pushed;
- ``tasks``: the Airflow tasks' entry points (each task calls the function of its own name);
- ``reproduce``: push training data to the DVC remote; rebuild a version from its lineage, and its verdict;
- ``replay``: a failure story replayed day by day through the tasks' functions, in a project of
  its own (``replay_project``), from the story's calendar (``stories``) to its timeline (``timeline``).

The top layer below the CLI: it may import every other sub-package, none imports it.
"""
