import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "accuracy: checks profiles against measured ground truth; run alone (scripts/run-tests.py)"
    )
