"""Kept only so model versions registered before the package layout (their skops files name
``pipelines.model_parts.CategoryCoder``) still load; the class lives in pipelines/model/parts.py."""

from pipelines.model.parts import CategoryCoder

__all__ = ["CategoryCoder"]
