"""Relevance engine: watch topics as data (signal groups + rules) and `classify()` of added text.

Pure functions, no I/O except reading the built-in topic YAML shipped in `monitor/topics/`.
"""
from __future__ import annotations

import bisect
import difflib
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, NamedTuple, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.patterns import BoundedPattern, PatternError
from monitor.relevance_model import load_model
from state.errors import TopicError

try:  # the regex parser moved in 3.11; used only to reject nested quantifiers
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = [
    "SEVERITIES", "Evidence", "DefinitionChange", "TopicMatch", "Topic",
    "builtin_topics", "load_topics", "classify", "severity_at_least",
]

SEVERITIES = ("low", "medium", "high")

# Work bounds. Text beyond MAX_TEXT_CHARS is not classified (a diff that adds more than this is a
# new bulk document; its first part decides); sentences are cut at MAX_SENTENCE_CHARS so that
# proximity and evidence stay local; tokens longer than MAX_TOKEN_CHARS (binary junk, base64)
# are broken so that no pattern can scan a giant "word" from many starting points.
MAX_TEXT_CHARS = 3_000_000
MAX_SENTENCE_CHARS = 1_000
MAX_TOKEN_CHARS = 200
MAX_HITS_PER_GROUP = 20_000
EVIDENCE_PER_RULE = 3
EVIDENCE_SENTENCES_PER_UNIT = 3
SCOPES = ("sentence", "paragraph", "document")


# --------------------------------------------------------------------------- public results

@dataclass(frozen=True)
class Evidence:
    """Why a rule fired: the sentence(s), the same text with matched terms marked «so», the terms."""

    rule: str
    sentence: str
    marked: str
    terms: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"rule": self.rule, "sentence": self.sentence, "marked": self.marked,
                "terms": list(self.terms)}


@dataclass(frozen=True)
class DefinitionChange:
    """A watched definition sentence that was added, removed or reworded by a change."""

    term: str
    change: str  # "added" | "removed" | "reworded"
    old: str | None
    new: str | None

    def to_dict(self) -> dict:
        return {"term": self.term, "change": self.change, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class TopicMatch:
    """One topic that the added text matched, with its score, severity and evidence."""

    topic: str
    title: str
    score: float
    severity: str
    evidence: tuple[Evidence, ...]
    definition_changes: tuple[DefinitionChange, ...] = ()
    removed: bool = False  # matched on text that disappeared (monitor/relevance.py): alerts as REMOVED

    def to_dict(self) -> dict:
        out = {
            "id": self.topic,
            "title": self.title,
            "score": self.score,
            "severity": self.severity,
            "evidence": [e.to_dict() for e in self.evidence],
            "definition_changes": [d.to_dict() for d in self.definition_changes],
        }
        if self.removed:
            out["removed"] = True
        return out


def severity_at_least(severity: str, minimum: str) -> bool:
    """True when `severity` ranks at or above `minimum` (low < medium < high)."""
    for value in (severity, minimum):
        if value not in SEVERITIES:
            raise ValueError(f"unknown severity {value!r}; known: {', '.join(SEVERITIES)}")
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


# --------------------------------------------------------------------------- topic schema

_ID = r"^[a-z0-9][a-z0-9_-]*$"
Severity = Literal["low", "medium", "high"]


class _Signals(BaseModel):
    """Phrases (case-insensitive), acronyms (case-sensitive) and regex patterns (case-insensitive;
    use (?-i:...) for a case-sensitive part). All are matched on word boundaries."""

    model_config = ConfigDict(extra="forbid")
    phrases: list[str] = Field(default_factory=list)
    acronyms: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)


class _RuleSpec(_Signals):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=_ID)
    all: list[str | list[str]] = Field(default_factory=list)  # each item: a group or alternatives
    any: list[str] = Field(default_factory=list)
    at_least: int | None = Field(None, ge=1)
    of: list[str] = Field(default_factory=list)
    within: str | int = "sentence"  # sentence | paragraph | document | "N words" | N
    context: dict[str, str] = Field(default_factory=dict)  # group -> scope where it must also appear
    unless: dict[str, str] = Field(default_factory=dict)  # group -> scope where it vetoes the rule
    weight: float = Field(1.0, gt=0, le=1000)
    severity: Severity = "medium"


class _DefinitionsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terms: list[str] = Field(min_length=1)  # groups whose terms are watched for definitions
    context: dict[str, str] = Field(default_factory=dict)  # group -> scope where it must also appear
    unless: dict[str, str] = Field(default_factory=dict)  # group -> scope where it vetoes a definition
    weight: float = Field(3.0, gt=0, le=1000)
    severity: Severity = "high"


class _ModelSpec(BaseModel):
    """An offline second signal: a linear model file shipped in monitor/topics, and the groups that
    must (context) or must not (unless) appear anywhere in the text for it to be consulted."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.json$")
    context: list[str | list[str]] = Field(default_factory=list)  # each item: a group or alternatives
    unless: list[str] = Field(default_factory=list)


class _TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1)
    description: str = ""
    threshold: float = Field(1.0, gt=0, le=1000)
    groups: dict[str, _Signals] = Field(default_factory=dict)
    rules: list[_RuleSpec] = Field(min_length=1)
    exclude: dict[str, str] = Field(default_factory=dict)  # group -> scope; vetoes every rule
    definitions: _DefinitionsSpec | None = None
    model: _ModelSpec | None = None


# --------------------------------------------------------------------------- compiled topic

_LEFT = r"(?<![\w-])"
_RIGHT = r"(?!\w)"


def _phrase_regex(phrase: str) -> str:
    """A literal phrase: any run of spaces/hyphens in it matches any run of spaces/hyphens."""
    parts = [re.escape(p) for p in re.split(r"[\s\-‐–]+", phrase.strip()) if p]
    return _LEFT + r"[\s\-‐–]+".join(parts) + _RIGHT


@dataclass(frozen=True)
class _Group:
    name: str
    # at most two: case-insensitive and case-sensitive, each with its trigger prefixes
    regexes: tuple[tuple[re.Pattern, frozenset[str] | None], ...]


@dataclass(frozen=True)
class _Rule:
    id: str
    all: tuple[frozenset[str], ...]
    any: frozenset[str]
    at_least: int
    of: frozenset[str]
    scope: str  # sentence | paragraph | document | words
    words: int
    context: tuple[tuple[str, str], ...]
    unless: tuple[tuple[str, str], ...]
    weight: float
    severity: str

    @property
    def groups(self) -> frozenset[str]:
        out = set(self.any) | set(self.of)
        for alts in self.all:
            out |= alts
        return frozenset(out)

    def satisfied(self, present: set[str] | frozenset[str]) -> bool:
        if any(not (alts & present) for alts in self.all):
            return False
        if self.any and not (self.any & present):
            return False
        if self.at_least and len(self.of & present) < self.at_least:
            return False
        return True


@dataclass(frozen=True)
class Topic:
    """A compiled watch topic: signal groups, rules, exclusions, watched definitions, threshold."""

    id: str
    title: str
    description: str
    threshold: float
    groups: dict[str, _Group] = field(repr=False, compare=False)
    rules: tuple[_Rule, ...] = field(repr=False)
    exclude: tuple[tuple[str, str], ...] = ()
    definition_terms: tuple[str, ...] = ()
    definition_weight: float = 3.0
    definition_severity: str = "high"
    definition_context: tuple[tuple[str, str], ...] = ()
    definition_unless: tuple[tuple[str, str], ...] = ()
    model_file: str | None = None
    model_context: tuple[tuple[str, ...], ...] = ()  # each: alternatives, one of which must appear
    model_unless: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash(self.id)

    def model_gate_open(self, text: str) -> bool:
        """True when the topic's model may be consulted on `text` (its context groups appear and
        none of its veto groups does, anywhere in the text)."""
        return _model_gate(_Doc(_normalize(text or "")), self)


def _nested_quantifier(pattern: str) -> bool:
    """True when an unbounded repeat contains another repeat (the classic (a+)+ backtracking bomb)."""
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:
        return False
    maxrepeat = _sre_parse.MAXREPEAT
    repeats = {_sre_parse.MAX_REPEAT, _sre_parse.MIN_REPEAT}
    poss = getattr(_sre_parse, "POSSESSIVE_REPEAT", None)
    if poss is not None:
        repeats.add(poss)

    def has_repeat(items) -> bool:
        for op, av in items:
            if op in repeats and av[1] > 1:
                return True
            if _children_have(op, av, has_repeat):
                return True
        return False

    def walk(items) -> bool:
        for op, av in items:
            if op in repeats:
                lo, hi, body = av
                if (hi == maxrepeat or hi > 100) and has_repeat(body):
                    return True
                if walk(body):
                    return True
            elif _children_have(op, av, walk):
                return True
        return False

    return walk(parsed)


def _children_have(op, av, fn) -> bool:
    name = str(op)
    if name == "SUBPATTERN":
        return fn(av[-1])
    if name == "BRANCH":
        return any(fn(b) for b in av[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return fn(av[1])
    if name == "ATOMIC_GROUP":
        return fn(av)
    if name == "GROUPREF_EXISTS":
        return fn(av[1]) or (av[2] is not None and fn(av[2]))
    return False


def _parse_within(value: Any) -> tuple[str, int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return ("words", value) if value > 0 else None
    if isinstance(value, str):
        v = value.strip().lower()
        if v in SCOPES:
            return (v, 0)
        m = re.fullmatch(r"(\d+)\s*words?", v)
        if m and int(m.group(1)) > 0:
            return ("words", int(m.group(1)))
    return None


def _check_pattern(p: Any) -> str | None:
    """The problem with one user pattern, or None."""
    if not isinstance(p, str) or not p:
        return "empty pattern"
    try:
        re.compile(f"(?:{p})", re.IGNORECASE)
    except re.error as e:
        try:  # report the pattern's own error text (position within the pattern as written)
            re.compile(p, re.IGNORECASE)
        except re.error as e2:
            return f"bad pattern {p!r}: {e2}"
        return f"bad pattern {p!r}: {e}"
    if _nested_quantifier(p):
        return f"bad pattern {p!r}: nested quantifier (catastrophic backtracking); bound the inner or outer repeat"
    if re.fullmatch(f"(?:{p})", "", re.IGNORECASE):
        return f"bad pattern {p!r}: matches the empty string"
    return None


def _signal_problems(raw: Any, label: str) -> list[str]:
    out: list[str] = []
    if not isinstance(raw, dict):
        return out
    for key in ("phrases", "acronyms"):
        items = raw.get(key)
        if isinstance(items, list):
            for s in items:
                if isinstance(s, str) and not s.strip():
                    out.append(f"{label}: empty {key[:-1]}")
    items = raw.get("patterns")
    if isinstance(items, list):
        for p in items:
            if isinstance(p, str):
                problem = _check_pattern(p)
                if problem:
                    out.append(f"{label}: {problem}")
    return out


def _has_signals(raw: Any) -> bool:
    return isinstance(raw, dict) and any(raw.get(k) for k in ("phrases", "acronyms", "patterns"))


def _semantic_problems(raw: dict) -> list[str]:
    """Problems pydantic cannot see: patterns, group references, scopes. Runs on the raw dict so
    that a topic with a typo'd field still gets its patterns checked (every problem at once)."""
    out: list[str] = []
    groups = raw.get("groups") if isinstance(raw.get("groups"), dict) else {}
    known = set(groups)
    for name, g in groups.items():
        out += _signal_problems(g, f"group {name!r}")
        if isinstance(g, dict) and not _has_signals(g):
            out.append(f"group {name!r}: no phrases, acronyms or patterns")

    def check_scope_map(value: Any, label: str, known_here: set[str]) -> None:
        if not isinstance(value, dict):
            return
        for g, scope in value.items():
            if g not in known_here:
                out.append(f"{label}: unknown group {g!r}; known: {', '.join(sorted(known_here)) or '(none)'}")
            if not (isinstance(scope, str) and scope in SCOPES):
                out.append(f"{label}: scope {scope!r} of {g!r} is not one of {', '.join(SCOPES)}")

    rules = raw.get("rules") if isinstance(raw.get("rules"), list) else []
    seen_rules: set[str] = set()
    for i, r in enumerate(rules):
        if not isinstance(r, dict):
            continue
        rid = r.get("id")
        label = f"rule {rid!r}" if isinstance(rid, str) else f"rules[{i}]"
        if isinstance(rid, str):
            if rid in seen_rules:
                out.append(f"{label}: duplicate rule id")
            seen_rules.add(rid)
        out += _signal_problems(r, label)
        known_here = known | ({rid} if isinstance(rid, str) and _has_signals(r) else set())
        refs: list[str] = []
        for item in r.get("all") or []:
            refs += item if isinstance(item, list) else [item]
        for key in ("any", "of"):
            if isinstance(r.get(key), list):
                refs += r[key]
        for g in refs:
            if isinstance(g, str) and g not in known_here:
                out.append(f"{label}: unknown group {g!r}; known: {', '.join(sorted(known_here)) or '(none)'}")
        if not refs and not _has_signals(r):
            out.append(f"{label}: needs groups (all, any or at_least/of) or its own phrases, acronyms or patterns")
        n, of = r.get("at_least"), r.get("of")
        if isinstance(n, int) and not isinstance(n, bool):
            if not isinstance(of, list) or not of:
                out.append(f"{label}: at_least needs a list 'of' groups")
            elif n > len(of):
                out.append(f"{label}: at_least {n} is more than the {len(of)} groups listed in 'of'")
        elif of:
            out.append(f"{label}: 'of' needs at_least")
        if "within" in r and _parse_within(r["within"]) is None:
            out.append(f"{label}: within {r['within']!r} is not sentence, paragraph, document or 'N words'")
        check_scope_map(r.get("context"), label, known_here)
        check_scope_map(r.get("unless"), label, known_here)
    check_scope_map(raw.get("exclude"), "exclude", known)
    d = raw.get("definitions")
    if isinstance(d, dict) and isinstance(d.get("terms"), list):
        for g in d["terms"]:
            if isinstance(g, str) and g not in known:
                out.append(f"definitions: unknown group {g!r}; known: {', '.join(sorted(known)) or '(none)'}")
    if isinstance(d, dict):
        check_scope_map(d.get("context"), "definitions", known)
        check_scope_map(d.get("unless"), "definitions", known)
    m = raw.get("model")
    if isinstance(m, dict):
        for key in ("context", "unless"):
            refs = [x for g in m.get(key) or [] for x in (g if isinstance(g, list) else [g])]
            for g in refs:
                if isinstance(g, str) and g not in known:
                    out.append(f"model.{key}: unknown group {g!r}; known: {', '.join(sorted(known)) or '(none)'}")
    return out


def _pydantic_problems(err: ValidationError, raw: dict) -> list[str]:
    out = []
    for e in err.errors():
        loc = list(e["loc"])
        label = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rules = raw.get("rules")
            rid = rules[loc[1]].get("id") if isinstance(rules, list) and isinstance(rules[loc[1]], dict) else None
            label = f"rule {rid!r}" if isinstance(rid, str) else f"rules[{loc[1]}]"
            loc = loc[2:]
        elif len(loc) >= 2 and loc[0] == "groups":
            label = f"group {loc[1]!r}"
            loc = loc[2:]
        path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            msg = "missing"
        else:
            msg = e["msg"]
        where = label + ("." if label and path else "") + path
        out.append(f"{where}: {msg}" if where else msg)
    return out


def _compile_signals(name: str, s: _Signals, bounded: bool = False) -> _Group:
    ci = [_phrase_regex(p) for p in s.phrases if p.strip()]
    # an operator's patterns run on RE2 (linear time), each on its own; the built-ins' stay in re
    ci += [f"{_LEFT}(?:{p}){_RIGHT}" for p in s.patterns] if not bounded else []
    cs = [_phrase_regex(a) for a in s.acronyms if a.strip()]
    regexes: list = [BoundedPattern(p, ignorecase=True, words=True) for p in s.patterns] if bounded else []
    if ci:
        regexes.append(re.compile("|".join(f"(?:{x})" for x in ci), re.IGNORECASE))
    if cs:
        regexes.append(re.compile("|".join(f"(?:{x})" for x in cs)))
    return _Group(name, tuple((rx, _triggers(rx)) for rx in regexes))


def _build(spec: _TopicSpec, bounded: bool = False) -> Topic:
    groups = {name: _compile_signals(name, g, bounded) for name, g in spec.groups.items()}
    rules = []
    for r in spec.rules:
        all_ = [frozenset([a]) if isinstance(a, str) else frozenset(a) for a in r.all]
        if r.phrases or r.acronyms or r.patterns:
            groups[f"rule:{r.id}"] = _compile_signals(r.id, r, bounded)
            all_.append(frozenset([f"rule:{r.id}"]))

        def own(g: str, rid: str = r.id) -> str:
            return f"rule:{rid}" if g == rid and f"rule:{rid}" in groups else g

        all_ = [frozenset(own(g) for g in alts) for alts in all_]
        scope, words = _parse_within(r.within)  # type: ignore[misc]
        rules.append(_Rule(
            id=r.id, all=tuple(all_), any=frozenset(own(g) for g in r.any),
            at_least=r.at_least or 0, of=frozenset(own(g) for g in r.of),
            scope=scope, words=words,
            context=tuple((own(g), s) for g, s in r.context.items()),
            unless=tuple((own(g), s) for g, s in r.unless.items()),
            weight=r.weight, severity=r.severity,
        ))
    d = spec.definitions
    return Topic(
        id=spec.id, title=spec.title, description=spec.description.strip(),
        threshold=spec.threshold, groups=groups, rules=tuple(rules),
        exclude=tuple(spec.exclude.items()),
        definition_terms=tuple(d.terms) if d else (),
        definition_weight=d.weight if d else 3.0,
        definition_severity=d.severity if d else "high",
        definition_context=tuple(d.context.items()) if d else (),
        definition_unless=tuple(d.unless.items()) if d else (),
        model_file=spec.model.file if spec.model else None,
        model_context=tuple((g,) if isinstance(g, str) else tuple(g) for g in spec.model.context) if spec.model else (),
        model_unless=tuple(spec.model.unless) if spec.model else (),
    )


def load_topics(data: list[dict], where: str = "topics", *, bounded: bool = True) -> list[Topic]:
    """Validate and compile topic definitions (the built-ins' YAML or govwatch.yaml `topics:`).

    Every problem is reported at once, located, e.g.
    ``topics[0] 'my-topic' rule 'outcome': bad pattern '(unclosed': missing ), ...``.
    `bounded` (operator topics) runs their patterns on RE2; only the built-ins pass False.
    """
    if not isinstance(data, list):
        raise TopicError(where, [f"{where}: must be a list of topics"])
    problems: list[str] = []
    bad_ids: list[str] = []
    topics: list[Topic] = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        if not isinstance(raw, dict):
            problems.append(f"{where}[{i}]: must be a mapping with id, title and rules")
            bad_ids.append(f"{where}[{i}]")
            continue
        tid = raw.get("id")
        prefix = f"{where}[{i}] {tid!r}" if isinstance(tid, str) else f"{where}[{i}]"
        mine: list[str] = []
        spec = None
        try:
            spec = _TopicSpec.model_validate(raw)
        except ValidationError as e:
            mine += _pydantic_problems(e, raw)
        mine += _semantic_problems(raw)
        if isinstance(tid, str):
            if tid in seen:
                mine.append(f"duplicate topic id {tid!r}")
            seen.add(tid)
        if mine:
            problems += [f"{prefix} {p}" if not p.startswith(("[", ".")) else f"{prefix}{p}" for p in mine]
            bad_ids.append(tid if isinstance(tid, str) else f"{where}[{i}]")
            continue
        try:
            topics.append(_build(spec, bounded))  # type: ignore[arg-type]
        except PatternError as e:  # what RE2 cannot run (monitor/patterns.py)
            problems.append(f"{prefix}: {e}")
            bad_ids.append(tid)
    if problems:
        raise TopicError(", ".join(dict.fromkeys(bad_ids)), problems)
    return topics


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[Topic, ...]:
    data = []
    folder = resources.files("monitor.topics")
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            # the package's own files: libyaml's parser when there is one (every start reads them)
            data.append(yaml.load(entry.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    return tuple(load_topics(data, where="monitor/topics", bounded=False))


def builtin_topics() -> list[Topic]:
    """The built-in topics from monitor/topics/*.yaml, validated and compiled once."""
    return list(_builtin())


# --------------------------------------------------------------------------- text segmentation

_WORD4 = re.compile(r"(?<!\w)\w{1,4}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]+")
_LONG_TOKEN = re.compile(r"\S{%d}" % MAX_TOKEN_CHARS)
_PARA_BREAK = re.compile(r"\n[ \t\xa0]*\n\s*")
_SENT_END = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"“‘'(\[]?[A-Z0-9•])")
_NEWLINE = re.compile(r"\n")
_ABBREV = frozenset(
    "mr mrs ms dr no nos sec secs st jan feb mar apr jun jul aug sep sept oct nov dec rep sen gen "
    "inc co corp jr sr vs etc e.g i.e fig vol pub stat art h.r approx dept gov u.s u.s.c ft p pp".split()
)


def _normalize(text: str) -> str:
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    text = text[:MAX_TEXT_CHARS]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(" ", text)
    return _LONG_TOKEN.sub(lambda m: m.group(0) + " ", text)


class _Doc:
    """Text cut into sentences (start, end) grouped into paragraphs; hit offsets map to both."""

    def __init__(self, text: str):
        self.text = text
        starts: list[int] = []
        ends: list[int] = []
        paras: list[int] = []
        pos = 0
        pi = 0
        for m in [*_PARA_BREAK.finditer(text), None]:
            pend = m.start() if m else len(text)
            if text[pos:pend].strip():
                for s, e in self._sentences(pos, pend):
                    starts.append(s)
                    ends.append(e)
                    paras.append(pi)
                pi += 1
            if m:
                pos = m.end()
        self.starts, self.ends, self.paras = starts, ends, paras
        self._words: dict[int, list[int]] = {}
        self._keys: list[str] | None = None
        self._offsets: list[int] = []
        self.cache: dict[tuple[str, str], list[_Hit]] = {}
        self.presence: dict[int, tuple[set[int], set[int], list[_Hit]]] = {}  # keeps the list alive

    def _index(self) -> None:
        low = self.text.lower()
        if len(low) != len(self.text):  # a few characters lowercase to two: keep offsets aligned
            low = re.sub(r"[^\x00-\x7f]", "\x00", self.text).lower()
        self._keys = _WORD4.findall(low)
        self._offsets = [m.start() for m in _WORD4.finditer(low)]

    def word_keys(self) -> set[str]:
        """The distinct word keys (first 4 characters, lowercased) of the text."""
        if self._keys is None:
            self._index()
        return set(self._keys)  # type: ignore[arg-type]

    def words_with(self, keys: dict[str, Any]) -> list[tuple[int, str]]:
        """(offset, key) of the words whose key is in `keys`, in text order."""
        if self._keys is None:
            self._index()
        return [(o, k) for o, k in zip(self._offsets, self._keys) if k in keys]  # type: ignore[arg-type]

    def _sentences(self, start: int, end: int):
        text = self.text
        cuts = [start]
        for m in _SENT_END.finditer(text, start, end):
            i = m.start()
            word = text[max(start, i - 12):i].rsplit(None, 1)[-1].lower().lstrip("(\"'“") if i > start else ""
            if word in _ABBREV or (len(word) == 1 and word.isalpha()) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):
                continue
            cuts.append(m.end())
        for m in _NEWLINE.finditer(text, start, end):
            i = m.start()
            line_start = text.rfind("\n", start, i) + 1
            prev = text[max(line_start, start):i].strip()
            nxt = text[m.end():min(end, m.end() + 3)].lstrip()
            if len(prev) < 50 or prev[-1:] in ".!?:;" or nxt[:1] in "-•*–":
                cuts.append(m.end())
        cuts = sorted(set(cuts))
        cuts.append(end)
        for s, e in zip(cuts, cuts[1:]):
            while e - s > MAX_SENTENCE_CHARS:
                cut = text.rfind(" ", s + MAX_SENTENCE_CHARS // 2, s + MAX_SENTENCE_CHARS)
                cut = cut + 1 if cut > 0 else s + MAX_SENTENCE_CHARS
                if text[s:cut].strip():
                    yield s, cut
                s = cut
            if text[s:e].strip():
                yield s, e

    def sentence_of(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self.starts, offset) - 1)

    def sentence(self, i: int) -> str:
        return self.text[self.starts[i]:self.ends[i]]

    def word_index(self, sent: int, offset: int) -> int:
        """Word number of `offset` within its paragraph (for 'within N words')."""
        para = self.paras[sent]
        words = self._words.get(para)
        if words is None:
            first = bisect.bisect_left(self.paras, para)
            last = bisect.bisect_right(self.paras, para) - 1
            words = [m.start() for m in re.finditer(r"\S+", self.text[self.starts[first]:self.ends[last]])]
            base = self.starts[first]
            words = [w + base for w in words]
            self._words[para] = words
        return bisect.bisect_right(words, offset)


class _Hit(NamedTuple):
    """One match of a group; tuples sort by start offset."""

    start: int
    end: int
    group: str
    sent: int


_PREFIX = 4  # trigger keys: the first 1..4 lowercased word characters of a match


def _first_chars(items) -> frozenset[str] | None:
    """Lowercased word-character prefixes (1..4 chars) that every match of a parsed regex starts
    with at a word start, "#d" for "a digit"; None when they cannot be told (scan the whole text)."""
    items = list(items)
    i = 0
    while i < len(items) and str(items[i][0]) in ("ASSERT", "ASSERT_NOT", "AT"):
        i += 1  # zero-width: word-boundary guards
    lit = ""
    while i < len(items) and str(items[i][0]) == "LITERAL" and len(lit) < _PREFIX:
        ch = chr(items[i][1]).lower()
        if not (ch.isalnum() or ch == "_"):
            break
        lit += ch
        i += 1
    if lit:
        return frozenset([lit])
    if i >= len(items):
        return None
    op, av = items[i]
    name = str(op)
    if name == "SUBPATTERN":
        return _first_chars(av[-1])
    if name == "BRANCH":
        out: set[str] = set()
        for branch in av[1]:
            sub = _first_chars(branch)
            if sub is None:
                return None
            out |= sub
        return frozenset(out)
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and av[0] >= 1:
        return _first_chars(av[2])
    if name == "IN":
        out = set()
        for iop, iav in av:
            iname = str(iop)
            if iname == "LITERAL" and (chr(iav).isalnum() or chr(iav) == "_"):
                out.add(chr(iav).lower())
            elif iname == "CATEGORY" and str(iav) == "CATEGORY_DIGIT":
                out.add("#d")
            elif iname == "RANGE" and chr(iav[0]).isdigit() and chr(iav[1]).isdigit():
                out.add("#d")
            else:
                return None
        return frozenset(out)
    return None


def _triggers(rx: re.Pattern) -> frozenset[str] | None:
    try:
        return _first_chars(_sre_parse.parse(rx.pattern, rx.flags & ~re.UNICODE))
    except Exception:  # pragma: no cover - a pattern the parser cannot walk: scan it whole
        return None


def _find(doc: _Doc, topic: Topic, names: set[str] | frozenset[str]) -> dict[str, list[_Hit]]:
    """Hits of the named groups of one topic (see `_scan`)."""
    _scan(doc, [(topic, names)])
    return {n: doc.cache[(topic.id, n)] for n in names if doc.cache[(topic.id, n)]}


def _scan(doc: _Doc, wanted: list[tuple[Topic, set[str] | frozenset[str]]]) -> None:
    """Find the hits of every (topic, group) in one pass. A pattern whose first characters are
    known is tried (anchored) only at the words that start with them; others scan the text."""
    found: dict[tuple[str, str], list[_Hit]] = {}
    entries: list[tuple[tuple[str, str], re.Pattern]] = []
    table: dict[str, list[int]] = {}
    for topic, names in wanted:
        for name in names:
            key = (topic.id, name)
            if key in doc.cache or key in found:
                continue
            hits = found[key] = []
            for rx, keys in topic.groups[name].regexes:
                if keys is None:  # no known first characters: scan sentence by sentence (bounded)
                    for i, (s0, s1) in enumerate(zip(doc.starts, doc.ends)):
                        for m in rx.finditer(doc.text, s0, s1):
                            if m.end() > m.start():
                                hits.append(_Hit(m.start(), m.end(), name, i))
                        if len(hits) >= MAX_HITS_PER_GROUP:
                            break
                    continue
                entries.append((key, rx))
                for k in keys:
                    table.setdefault(k, []).append(len(entries) - 1)
    if table:
        lengths = sorted({len(k) for k in table if k != "#d"})
        digit = table.get("#d", [])
        cands: dict[str, list[int]] = {}
        for k in doc.word_keys():
            c = [x for n in lengths for x in table.get(k[:n], ())]
            if k[:1].isdigit():
                c += digit
            if c:
                cands[k] = list(dict.fromkeys(c))
        positions: dict[int, list[int]] = {}
        for start, k in doc.words_with(cands):
            for idx in cands[k]:
                positions.setdefault(idx, []).append(start)
        text, sentence_of, ends = doc.text, doc.sentence_of, doc.ends
        for idx, starts in positions.items():
            (topic_id, name), rx = entries[idx]
            hits, match, last = found[(topic_id, name)], rx.match, -1
            for start in starts:
                if start < last:
                    continue
                sent = sentence_of(start)
                m = match(text, start, ends[sent])  # a match never runs past its sentence
                if m is not None and m.end() > start:
                    last = m.end()
                    hits.append(_Hit(start, last, name, sent))
                    if len(hits) >= MAX_HITS_PER_GROUP:
                        break
    for key, hits in found.items():
        hits.sort()
        doc.cache[key] = [h for i, h in enumerate(hits) if i == 0 or h.start != hits[i - 1].start]


# --------------------------------------------------------------------------- evidence

def _squash(s: str) -> str:
    return " ".join(s.split())


def _mark(doc: _Doc, sent: int, hits: list[_Hit]) -> tuple[str, str, list[str]]:
    s0, s1 = doc.starts[sent], doc.ends[sent]
    spans = sorted((max(h.start, s0), min(h.end, s1)) for h in hits if s0 <= h.start < s1)
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, pos, terms = [], s0, []
    for a, b in merged:
        term = _squash(doc.text[a:b])
        out += [doc.text[pos:a], "«", doc.text[a:b], "»"]
        terms.append(term)
        pos = b
    out.append(doc.text[pos:s1])
    return _squash(doc.text[s0:s1]), _squash("".join(out)), terms


def _evidence(doc: _Doc, rule_id: str, hits: list[_Hit]) -> Evidence:
    sents = sorted({h.sent for h in hits})[:EVIDENCE_SENTENCES_PER_UNIT]
    plain, marked, terms = [], [], []
    for s in sents:
        p, m, t = _mark(doc, s, [h for h in hits if h.sent == s])
        plain.append(p)
        marked.append(m)
        terms += t
    seen: dict[str, None] = {}
    for t in terms:
        seen.setdefault(t, None)
    return Evidence(rule_id, " … ".join(plain), " … ".join(marked), tuple(seen))


# --------------------------------------------------------------------------- rule evaluation

def _scope_keys(doc: _Doc, sents: set[int]) -> dict[str, set]:
    return {"sentence": set(sents), "paragraph": {doc.paras[s] for s in sents}, "document": {0}}


def _present_in(doc: _Doc, hits: list[_Hit] | None, scope: str, keys: dict[str, set]) -> bool:
    if not hits:
        return False
    if scope == "document":
        return True
    where = doc.presence.get(id(hits))
    if where is None:  # sentence and paragraph sets of this hit list, computed once
        sents = {h.sent for h in hits}
        where = doc.presence[id(hits)] = (sents, {doc.paras[i] for i in sents}, hits)
    mine = where[0] if scope == "sentence" else where[1]
    return not mine.isdisjoint(keys[scope])


def _units(doc: _Doc, rule: _Rule, hits: dict[str, list[_Hit]]):
    """Yield the hit lists of each scope unit (sentence, paragraph, document or word window)
    in which the rule's group condition holds."""
    mine = sorted(h for g in rule.groups for h in hits.get(g, ()))
    if not mine:
        return
    if rule.scope == "document":
        buckets = {0: mine}
    else:
        buckets = {}
        for h in mine:
            key = h.sent if rule.scope == "sentence" else doc.paras[h.sent]
            buckets.setdefault(key, []).append(h)
    for _, unit in sorted(buckets.items()):
        if not rule.satisfied({h.group for h in unit}):
            continue
        if rule.scope != "words":
            yield unit
            continue
        pos = [doc.word_index(h.sent, h.start) for h in unit]
        j = 0
        for i in range(len(unit)):  # windows of N words starting at each hit
            while j < len(unit) and pos[j] - pos[i] <= rule.words:
                j += 1
            window = unit[i:j]
            if rule.satisfied({h.group for h in window}):
                yield window
                break


def _apply_rule(doc: _Doc, topic: Topic, rule: _Rule, hits: dict[str, list[_Hit]]):
    fired: list[list[_Hit]] = []
    for unit in _units(doc, rule, hits):
        keys = _scope_keys(doc, {h.sent for h in unit})
        if any(not _present_in(doc, hits.get(g), s, keys) for g, s in rule.context):
            continue
        if any(_present_in(doc, hits.get(g), s, keys) for g, s in (*rule.unless, *topic.exclude)):
            continue
        fired.append(unit)
    return fired


# --------------------------------------------------------------------------- definitions

_DEF_AFTER = re.compile(
    r"(?<!\w)(?:means|mean|shall mean|is defined as|are defined as|is defined to (?:mean|include)|"
    r"are defined to (?:mean|include)|shall be defined as|refers to|refer to|shall refer to|"
    r"is understood (?:to mean|as)|has the meaning|is the use of|includes? any)(?!\w)",
    re.IGNORECASE,
)
_DEF_BEFORE = re.compile(
    r"(?<!\w)(?:the terms?|definitions? of|defines?|redefines?|defined|redefined|is defined)(?!\w)",
    re.IGNORECASE,
)


def _definition_groups(topic: Topic) -> set[str]:
    """The groups that finding a topic's watched definitions needs (terms, context, vetoes)."""
    return set(topic.definition_terms) | {g for g, _ in (*topic.definition_context, *topic.definition_unless)}


def _definition_applies(doc: _Doc, topic: Topic, sent: int, hits: dict[str, list[_Hit]]) -> bool:
    """A definition sentence counts only where the topic's definition context groups appear and
    none of its vetoes does (e.g. a foreign or a state definition quoted on a page)."""
    keys = _scope_keys(doc, {sent})
    if any(not _present_in(doc, hits.get(g), s, keys) for g, s in topic.definition_context):
        return False
    return not any(_present_in(doc, hits.get(g), s, keys) for g, s in topic.definition_unless)


def _definitions(doc: _Doc, topic: Topic) -> dict[str, list[str]]:
    """Watched definition sentences of a text, keyed by the (normalised) defined term."""
    if not doc.starts or not topic.definition_terms:
        return {}
    scope_hits = _find(doc, topic, _definition_groups(topic))
    hits = {g: h for g, h in scope_hits.items() if g in topic.definition_terms}
    by_sent: dict[int, list[_Hit]] = {}
    for hs in hits.values():
        for h in hs:
            by_sent.setdefault(h.sent, []).append(h)
    out: dict[str, list[str]] = {}
    headings = {_sentence_key(doc.sentence(i)) for i in by_sent if _heading(doc.sentence(i))}
    for sent, terms in sorted(by_sent.items()):
        s0 = doc.starts[sent]
        sentence = doc.sentence(sent)
        if _sentence_key(sentence) in headings:
            continue  # a title or heading ("DHS Redefines Domestic Terrorism"), here or repeated, defines nothing
        term = None
        for cue in _DEF_AFTER.finditer(sentence):
            before = [h for h in terms if h.end - s0 <= cue.start()
                      and len(sentence[h.end - s0:cue.start()].split()) <= 8]
            if before:
                term = max(before, key=lambda h: (h.end, -h.start))  # the longest, nearest term
                break
        if term is None:
            for cue in _DEF_BEFORE.finditer(sentence):
                after = [h for h in terms if h.start - s0 >= cue.end()
                         and len(sentence[cue.end():h.start - s0].split()) <= 4]
                if after:
                    term = min(after, key=lambda h: (h.start, -h.end))
                    break
        if term is None or not _definition_applies(doc, topic, sent, scope_hits):
            continue
        key = _squash(doc.text[term.start:term.end]).lower()
        out.setdefault(key, []).append(_squash(sentence))
    return out


def _heading(sentence: str) -> bool:
    """A title or heading line: short, on a line of its own, without a sentence's closing punctuation."""
    s = sentence.strip()
    return "\n" not in s and len(s.split()) <= 14 and s[-1:] not in ".;:!?\"'”’)"


def _sentence_key(sentence: str) -> str:
    return " ".join(sentence.split()).rstrip(".;:!? ").lower()


def _same(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return re.sub(r"[\"'“”‘’]", "", s).lower()
    return norm(a) == norm(b)


def _definition_changes(added: _Doc, removed: _Doc, topic: Topic) -> list[DefinitionChange]:
    new, old = _definitions(added, topic), _definitions(removed, topic)
    changes: list[DefinitionChange] = []
    for term in sorted(set(new) | set(old)):
        n = [s for s in new.get(term, []) if not any(_same(s, o) for o in old.get(term, []))]
        o = [s for s in old.get(term, []) if not any(_same(s, x) for x in new.get(term, []))]
        while n and o:  # pair the most similar old/new sentences as rewordings
            i, j = max(((i, j) for i in range(len(o)) for j in range(len(n))),
                       key=lambda ij: difflib.SequenceMatcher(None, o[ij[0]], n[ij[1]]).ratio())
            changes.append(DefinitionChange(term, "reworded", o.pop(i), n.pop(j)))
        changes += [DefinitionChange(term, "added", None, s) for s in n]
        changes += [DefinitionChange(term, "removed", s, None) for s in o]
    return changes


def _definition_evidence(change: DefinitionChange, topic: Topic) -> Evidence:
    sentence = change.new if change.new is not None else change.old or ""
    doc = _Doc(sentence)
    hits = [h for hs in _find(doc, topic, set(topic.definition_terms)).values() for h in hs]
    plain, marked, terms = _mark(doc, 0, hits) if doc.starts else (sentence, sentence, [])
    if len(doc.starts) > 1:  # a definition sentence that our splitter cuts: mark it whole
        marked = sentence
        for t in sorted(set(terms), key=len, reverse=True):
            marked = marked.replace(t, f"«{t}»")
        plain = sentence
    return Evidence(f"definition-{change.change}", plain, marked, tuple(dict.fromkeys(terms)))


# --------------------------------------------------------------------------- classify

def _needed(topic: Topic) -> set[str]:
    needed: set[str] = _definition_groups(topic) | {g for alts in topic.model_context for g in alts}
    needed |= set(topic.model_unless)
    for r in topic.rules:
        needed |= r.groups
        needed |= {g for g, _ in (*r.context, *r.unless)}
    return needed | {g for g, _ in topic.exclude}


# --------------------------------------------------------------------------- second signal

def _model_gate(doc: _Doc, topic: Topic) -> bool:
    if not doc.starts:
        return False
    hits = _find(doc, topic, {g for alts in topic.model_context for g in alts} | set(topic.model_unless))
    return (all(any(hits.get(g) for g in alts) for alts in topic.model_context)
            and not any(hits.get(g) for g in topic.model_unless))


def _model_match(doc: _Doc, topic: Topic) -> TopicMatch | None:
    """The topic's offline model as a second signal where no rule fired: a low-severity match at
    the threshold score, whose evidence is the sentence that contributes most to the model score
    (rule "model"), with its most contributing words marked."""
    if topic.model_file is None or not _model_gate(doc, topic):
        return None
    model = load_model(topic.model_file, topic.id)
    if model.probability(doc.text) < model.threshold:
        return None
    best = model.best_sentence(doc.text, zip(doc.starts, doc.ends))
    if best is None:
        return None
    s0, s1, words = best
    sentence = _squash(doc.text[s0:s1])
    spans: list[tuple[int, int]] = []
    for w in words:
        spans += [m.span() for m in re.finditer(r"(?<!\w)" + re.escape(w) + r"(?!\w)", sentence, re.IGNORECASE)]
    spans.sort()
    marked, pos, terms = [], 0, []
    for a, b in spans:
        if a < pos:
            continue
        marked += [sentence[pos:a], "«", sentence[a:b], "»"]
        terms.append(sentence[a:b])
        pos = b
    marked.append(sentence[pos:])
    if not terms:
        return None
    ev = Evidence("model", sentence, "".join(marked), tuple(dict.fromkeys(terms)))
    return TopicMatch(topic.id, topic.title, topic.threshold, "low", (ev,))


def _score_topic(doc: _Doc, topic: Topic, removed: _Doc, use_model: bool = True) -> TopicMatch | None:
    hits = _find(doc, topic, _needed(topic)) if doc.starts else {}
    score = 0.0
    severity = -1
    evidence: list[tuple[float, int, Evidence]] = []
    for rule in topic.rules:
        fired = _apply_rule(doc, topic, rule, hits)
        if not fired:
            continue
        score += rule.weight * (1 + 0.1 * min(len(fired) - 1, 5))
        severity = max(severity, SEVERITIES.index(rule.severity))
        for unit in fired[:EVIDENCE_PER_RULE]:
            evidence.append((-rule.weight, unit[0].start, _evidence(doc, rule.id, unit)))
    changes = _definition_changes(doc, removed, topic) if topic.definition_terms else []
    if changes:
        score += topic.definition_weight
        severity = max(severity, SEVERITIES.index(topic.definition_severity))
    if score < topic.threshold or severity < 0:
        return _model_match(doc, topic) if use_model and doc.starts else None
    evidence.sort(key=lambda t: (t[0], t[1]))
    ev = _one_per_sentence([_definition_evidence(c, topic) for c in changes] + [e for _, _, e in evidence])
    return TopicMatch(topic.id, topic.title, round(score, 2), SEVERITIES[severity], tuple(ev), tuple(changes))


def _one_per_sentence(evidence: list[Evidence]) -> list[Evidence]:
    """Each sentence once, under its best rule (the list comes best first): a headline that several
    rules saw, or that opens both the summary and the body, is evidence once."""
    seen: set[str] = set()
    out = []
    for e in evidence:
        parts = [_sentence_key(p) for p in e.sentence.split(" … ")]
        fresh = [p for p in parts if p not in seen]
        if not fresh:
            continue
        seen.update(parts)
        out.append(e)
    return out


def classify(added: str, topics: Sequence[Topic] | None = None, *, removed: str = "",
             use_model: bool = True) -> list[TopicMatch]:
    """Match the ADDED text of a change (a new document in full) against the topics.

    `removed` (text that disappeared) is used only to tell added/removed/reworded definitions
    apart; context that was already on the page is never passed in. Returns the matches at or
    above each topic's threshold, best first. Where no rule of a topic fired, its offline model
    (if it has one) may still match at low severity, with the sentence that weighed most as
    evidence; `use_model=False` asks for the rules alone.
    """
    topics = builtin_topics() if topics is None else topics
    added = _normalize(added or "")
    removed = _normalize(removed or "")
    if not added.strip() and not removed.strip():
        return []
    doc = _Doc(added)
    _scan(doc, [(t, _needed(t)) for t in topics])  # one pass over the words for every topic
    old = _Doc(removed)
    _scan(old, [(t, _definition_groups(t)) for t in topics if t.definition_terms])
    matches = [m for t in topics if (m := _score_topic(doc, t, old, use_model)) is not None]
    matches.sort(key=lambda m: (-m.score, -SEVERITIES.index(m.severity), m.topic))
    return matches
