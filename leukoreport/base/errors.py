
__all__ = ["LeukoError"]
"""The one error type the toolkit raises for bad input."""


class LeukoError(Exception):
    """Bad input: the message is one line naming the file or key and what is wrong."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
