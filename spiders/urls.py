"""URL normalisation shared by every kind: items are keyed by links without tracking noise."""
from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit

_TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid", "igshid",
    "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking",
    "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "rb_clickid", "s_cid", "ref_src",
    "__s", "ss_source", "ss_campaign_id", "elqtrackid", "elqtrack", "cmpid",
})


def strip_tracking(url: str) -> str:
    """`url` without utm_*/click-id/newsletter query parameters and without the fragment.

    The other parameters keep their order and their exact spelling (no re-encoding).
    """
    parts = urlsplit(url)
    kept = []
    for piece in parts.query.split("&") if parts.query else ():
        key = unquote_plus(piece.split("=", 1)[0]).strip().lower()
        if not piece or key.startswith("utm_") or key in _TRACKING_PARAMS:
            continue
        kept.append(piece)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), ""))
