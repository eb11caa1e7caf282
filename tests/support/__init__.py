"""What the tests share: the project builder, the params editors, the helpers the fixtures call.

Fixtures stay in conftest.py files and call these. Nothing here is a test module, and no test
module imports another (tests/unit/test_isolation.py checks both). Tests may import bench/
helpers; bench/ never imports tests/.
"""
