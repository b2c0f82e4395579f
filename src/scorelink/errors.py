"""The package's exceptions: every failure names what went wrong and what to do."""


class ScorelinkError(Exception):
    """Base class of every error scorelink raises on purpose."""


class ToolMissingError(ScorelinkError):
    """An external program or data file (FluidSynth, a soundfont) is not installed."""


class ScoreError(ScorelinkError):
    """A score could not be read or converted."""


class RenderError(ScorelinkError):
    """A score could not be engraved, or its engraving does not match its performance."""


class AudioError(ScorelinkError):
    """Audio could not be synthesised or read."""


class DatasetError(ScorelinkError):
    """A dataset folder is missing, incomplete, or of another format version."""


class CheckpointError(ScorelinkError):
    """A checkpoint is missing, corrupt, of another kind or of other preprocessing."""


class ConfigError(ScorelinkError):
    """A run configuration has an unknown key or a bad value."""


class SearchIndexError(ScorelinkError):
    """An index folder is missing, corrupt, of another format, or made by another model."""


class QueryError(ScorelinkError):
    """A search query cannot be answered as given (too short, silent, ambiguous, ...)."""
