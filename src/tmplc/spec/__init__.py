"""The spec language: Lark grammar -> atoms (parse.py) -> layout (structure.py); files (files.py)."""
