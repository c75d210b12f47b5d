"""Moved to common/errors.py (the bottom package); kept until training/ stops importing it."""
from common.errors import UserError  # noqa: F401
