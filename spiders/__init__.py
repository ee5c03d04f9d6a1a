"""Fetching: Scrapy for every HTTP request, feedparser for RSS/Atom; source kinds register here."""
from spiders import congress, feed, federal_register, listing, page, pdf  # noqa: F401  (registers the kinds)
from spiders.kinds import source_kinds  # noqa: F401
