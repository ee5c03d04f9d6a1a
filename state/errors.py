"""The one tree of govwatch errors; every layer raises these, the CLI turns them into one line.

GovwatchError         the CLI prints "Error: <message>" and exits non-zero
├── ConfigError       .path, .problems          exit code 2
├── SourceError       .source_id, .url          a fetch or parse failed; wraps the cause with `from e`
│   ├── ExtractError  the selector matched nothing, the PDF had no text layer, the body is not text
│   └── UnsafeURLError  the URL (or a redirect hop) points at a private or reserved address
├── TopicError        .topic, .problems         a topic definition is invalid
├── NotifyError       .target                   Apprise said False
└── StateError        the store failed
"""
from __future__ import annotations


class GovwatchError(Exception):
    """Base of every error govwatch raises on purpose."""

    exit_code = 1


class ConfigError(GovwatchError):
    """The configuration is invalid; `problems` lists every located problem."""

    exit_code = 2

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{path} has {n} problem{'s' if n != 1 else ''}:"
        super().__init__("\n  ".join([head, *self.problems]))


class SourceError(GovwatchError):
    """A source could not be fetched or parsed."""

    def __init__(self, message: str, source_id: str | None = None, url: str | None = None):
        self.source_id = source_id
        self.url = url
        super().__init__(message)


class ExtractError(SourceError):
    """No usable text could be extracted (selector matched nothing, PDF without text, binary junk)."""


class BlindError(ExtractError):
    """The response came and reads as nothing: its region matched nothing or its text is empty (a
    health problem, `empty`, from the first fetch)."""


class UnsafeURLError(SourceError):
    """The URL's scheme or resolved address is not allowed (private, loopback, reserved...)."""


class TopicError(GovwatchError):
    """A topic definition is invalid; `problems` names the topic and rule of each."""

    exit_code = 2

    def __init__(self, topic: str, problems: list[str]):
        self.topic = topic
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class NotifyError(GovwatchError):
    """A notification target refused or failed a message."""

    def __init__(self, message: str, target: str | None = None):
        self.target = target
        super().__init__(message)


class StateError(GovwatchError):
    """The store failed (database unreachable, migration failed)."""
