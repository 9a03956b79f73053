"""umlpy: a user-mode Linux kernel written in Python."""
__version__ = "0.1.0"
RELEASE = "6.1.0-umlpy"     # what uname(2) reports to guests
