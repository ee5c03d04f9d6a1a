"""Sentence-level diff: table of edits, sentence splitting, unified() text, highlight(), speed."""
from __future__ import annotations

import time

import pytest

from monitor.diff import Diff, diff, highlight, split_units

BASE = (
    "The Office of Professional Responsibility investigates misconduct. "
    "It reports to the Director.\n\n"
    "Cases are referred to the OIG first. The deadline is June 30, 2025.\n\n"
    "Contact us at the address below."
)

CASES = [
    # id, old, new, added, removed, replaced
    ("sentence-added", BASE, BASE + " New findings were published today.",
     ("New findings were published today.",), (), ()),
    ("sentence-removed", BASE, BASE.replace(" It reports to the Director.", ""),
     (), ("It reports to the Director.",), ()),
    ("sentence-reworded", BASE, BASE.replace("June 30, 2025", "August 15, 2025"),
     ("The deadline is August 15, 2025.",), ("The deadline is June 30, 2025.",),
     (("The deadline is June 30, 2025.", "The deadline is August 15, 2025."),)),
    ("paragraph-moved", BASE,
     "Contact us at the address below.\n\n" + BASE.rsplit("\n\n", 1)[0],
     (), (), ()),
    ("whitespace-only", BASE,
     BASE.replace(" ", "  ").replace("\n\n", "\n \n\n\t").replace("misconduct. ", "misconduct.\n"),
     (), (), ()),
    ("duplicate-added-once-more", BASE, BASE + "\n\nContact us at the address below.",
     ("Contact us at the address below.",), (), ()),
    ("duplicate-removed", BASE + "\n\nContact us at the address below.", BASE,
     (), ("Contact us at the address below.",), ()),
    ("empty-old", "", "First sentence. Second one.",
     ("First sentence.", "Second one."), (), ()),
    ("empty-new", "Only sentence.", "", (), ("Only sentence.",), ()),
    ("unrelated-replacement-not-paired", "The office is closed.", "Budget figures rose sharply in 2024.",
     ("Budget figures rose sharply in 2024.",), ("The office is closed.",), ()),
    ("identical", BASE, BASE, (), (), ()),
]


@pytest.mark.parametrize("old,new,added,removed,replaced", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_diff_table(old, new, added, removed, replaced):
    d = diff(old, new)
    assert d.added == added
    assert d.removed == removed
    assert d.replaced == replaced
    assert d.changed == bool(added or removed)
    assert d.added_text == "\n".join(added)
    assert d.removed_text == "\n".join(removed)


def test_replaced_pairs_are_also_in_added_and_removed():
    d = diff("A first point here. The fee is ten dollars per page. Closing words.",
             "A first point here. The fee is twelve dollars per page. Closing words. Extra note.")
    assert d.replaced == (("The fee is ten dollars per page.", "The fee is twelve dollars per page."),)
    for old, new in d.replaced:
        assert old in d.removed and new in d.added
    assert d.added == ("The fee is twelve dollars per page.", "Extra note.")


def test_pairing_prefers_the_most_similar_candidate():
    old = "The policy covers ICE employees in field offices."
    new = ("The policy covers all DHS staff everywhere now. "
           "The policy covers ICE employees in all field offices.")
    d = diff(old, new)
    assert d.replaced == ((old, "The policy covers ICE employees in all field offices."),)


SPLITS = [
    ("us-abbrev", "The U.S. Department of Homeland Security said so. It acted.",
     ["The U.S. Department of Homeland Security said so.", "It acted."]),
    ("times", "Doors open at 9 a.m. Eastern and close at 5 p.m. Central. Then we leave.",
     ["Doors open at 9 a.m. Eastern and close at 5 p.m. Central.", "Then we leave."]),
    ("months", "Filed Jan. 5 and amended Aug. 30, 2024. Next.",
     ["Filed Jan. 5 and amended Aug. 30, 2024.", "Next."]),
    ("number-and-section", "See No. 12 under Sec. 4 of the act. Done.",
     ["See No. 12 under Sec. 4 of the act.", "Done."]),
    ("no-as-word", "The answer was no. The case closed.", ["The answer was no.", "The case closed."]),
    ("titles", "Dr. Smith met Mr. Jones and Ms. Lee. They agreed.",
     ["Dr. Smith met Mr. Jones and Ms. Lee.", "They agreed."]),
    ("case-names", "In Doe v. Mayorkas the court ruled. Appeal followed.",
     ["In Doe v. Mayorkas the court ruled.", "Appeal followed."]),
    ("eg-ie-etal", "Some offices, e.g. Newark, i.e. Region 2, per Smith et al. (2020) agreed. Fine.",
     ["Some offices, e.g. Newark, i.e. Region 2, per Smith et al. (2020) agreed.", "Fine."]),
    ("question-exclaim-quote", 'Was it closed? Yes! "It was." Then more.',
     ["Was it closed?", "Yes!", '"It was."', "Then more."]),
    ("lowercase-after-dot-no-split", "Version 2.0 is out. see notes. Then more.",
     ["Version 2.0 is out. see notes.", "Then more."]),
    ("paragraphs", "First para.\n\nSecond para.", ["First para.", "Second para."]),
    ("wrapped-lines-joined", "A sentence wrapped\nacross two lines. Next.",
     ["A sentence wrapped across two lines.", "Next."]),
    ("table-rows-and-bullets", "| a | b |\n| c | d |\n- one\n- two",
     ["| a | b |", "| c | d |", "- one", "- two"]),
    ("whitespace-normalised", "  Too   many\tspaces.   Here.  ", ["Too many spaces.", "Here."]),
    ("empty", "", []),
]


@pytest.mark.parametrize("text,units", [s[1:] for s in SPLITS], ids=[s[0] for s in SPLITS])
def test_split_units(text, units):
    assert split_units(text) == units


def test_unified_exact_text():
    old = "Intro line.\n\nAlpha. Beta. Gamma.\n\nDelta. Epsilon. Zeta. Eta."
    new = "Intro line.\n\nAlpha. Beta changed here. Gamma.\n\nDelta. Epsilon. Zeta. Eta. Theta."
    assert diff(old, new).unified() == (
        "  Alpha.\n"
        "- Beta.\n"
        "+ Beta changed here.\n"
        "  Gamma.\n"
        "...\n"
        "  Eta.\n"
        "+ Theta."
    )
    assert diff(old, new).unified(context=0) == "- Beta.\n+ Beta changed here.\n...\n+ Theta."


def test_unified_leaves_out_moved_units():
    old = "One. Two. Three. Four."
    new = "Four. One. Two. Three. Five."
    d = diff(old, new)
    assert d.added == ("Five.",) and d.removed == ()
    assert d.unified() == "  Three.\n+ Five."


def test_unified_empty_when_unchanged():
    assert diff("Same. Text.", "Same.  Text.").unified() == ""


def test_unified_of_hand_built_diff():
    d = Diff(added=("New.",), removed=("Old.",), replaced=())
    assert d.unified() == "- Old.\n+ New."


def test_highlight_date_change():
    assert highlight("Comments are due June 30, 2025, to the agency.",
                     "Comments are due August 15, 2025, to the agency.") == [
        (0, "Comments are due "), (-1, "June 30"), (1, "August 15"), (0, ", 2025, to the agency."),
    ]


def test_highlight_identical():
    assert highlight("Same.", "Same.") == [(0, "Same.")]


def _big_text(n_paragraphs: int) -> list[str]:
    words = ("department homeland security immigration customs enforcement office "
             "professional responsibility investigation report employee").split()
    paras = []
    for p in range(n_paragraphs):
        sents = []
        for s in range(5):
            k = p * 5 + s
            sents.append(" ".join(words[(k * 7 + i * 3) % len(words)] for i in range(12)).capitalize()
                         + f" item {k}.")
        paras.append(" ".join(sents))
    return paras


def test_140kb_with_three_edits_is_fast():
    paras = _big_text(210)
    old = "\n\n".join(paras)
    assert len(old) > 140_000
    new_paras = list(paras)
    new_paras[10] = new_paras[10].replace("item 52.", "item 52 amended.")
    new_paras.insert(100, "A brand new sentence.")
    del new_paras[-3]
    new = "\n\n".join(new_paras)
    best = min(_timed(lambda: diff(old, new)) for _ in range(3))
    d = diff(old, new)
    assert len(d.added) == 2 and len(d.removed) == 6 and len(d.replaced) == 1
    assert best < 1.0, f"diff of 140 KB took {best * 1000:.1f} ms"  # a guard against quadratic work (~10 ms here)


def test_5mb_text_finishes():
    paras = _big_text(7400)
    old = "\n\n".join(paras)
    assert len(old) > 5_000_000
    new = old.replace("item 7.", "item 7 changed.").replace("item 30001.", "item thirty thousand one.")
    started = time.perf_counter()
    d = diff(old, new)
    d.unified()
    assert time.perf_counter() - started < 10
    assert len(d.replaced) == 2


def test_completely_rewritten_large_text_is_bounded():
    old = " ".join(f"Old sentence number {i} about topic {i % 7}." for i in range(20_000))
    new = " ".join(f"New sentence number {i} about subject {i % 5}." for i in range(20_000))
    started = time.perf_counter()
    d = diff(old, new)
    assert len(d.added) == 20_000 and len(d.removed) == 20_000
    assert len(d.replaced) <= 200                         # pairing is capped
    assert time.perf_counter() - started < 10


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
