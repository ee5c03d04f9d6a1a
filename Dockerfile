# govwatch: the scheduler in a container. Build: docker build -t govwatch .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GOVWATCH_LOG_FORMAT=json

# Debian's Tesseract (English data comes with it) and poppler's pdftoppm: scanned PDFs are read with OCR.
# Debian's Chromium (never a Playwright browser download): pages behind a JavaScript wall are rendered.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr poppler-utils chromium fonts-liberation \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/govwatch
# Dependencies from the project's own pinned metadata, then the code.
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY spiders ./spiders
COPY alerts ./alerts
COPY state ./state
RUN pip install . \
 && useradd --system --uid 10001 --create-home --home-dir /home/govwatch govwatch \
 && mkdir -p /data \
 && chown govwatch:govwatch /data

# State (SQLite database, evidence) lives on a volume; the configuration is read from
# /data/govwatch.yaml when mounted there, or from GOVWATCH_CONFIG; secrets come by environment.
USER govwatch
WORKDIR /data
VOLUME ["/data"]
ENV GOVWATCH_DATABASE=sqlite:////data/govwatch.db

HEALTHCHECK --interval=5m --timeout=30s --start-period=10m --retries=3 CMD ["govwatch", "health"]
ENTRYPOINT ["govwatch"]
CMD ["run"]
