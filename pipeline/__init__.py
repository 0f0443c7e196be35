"""Sorting municipal opinions on the 国・地方デジタル共通基盤 共通化候補 (offline batch)."""

__version__ = "0.1.0"
