"""The web page (`scorelink serve`)."""
