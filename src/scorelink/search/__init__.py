"""Search a collection: index scores and recordings, query by audio or by sheet image."""
