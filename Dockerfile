# One image for every service: `exness auth`, `exness market`, `exness trading`, `exness poller`,
# `exness migrate` and `exness edge render` (which writes the Envoy config for the official
# Envoy image from the same template `exness up` uses). See docker-compose.yml.

# --- the web terminal bundle (esbuild) -------------------------------------------------------
FROM node:22-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ web/
COPY gen/ts/ gen/ts/
RUN npm run build:web

# --- the Python services --------------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    EXNESS_DATA_DIR=/data EXNESS_BIND_HOST=0.0.0.0 EXNESS_LOG_FORMAT=json
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY gen/ gen/
COPY services/ services/
COPY kit/ kit/
COPY cli/ cli/
COPY clients/python/ clients/python/
COPY gateway/ gateway/
COPY migrations/ migrations/
# Editable: the code finds migrations/ and gen/ next to itself under /app.
RUN pip install --no-cache-dir -c constraints.txt -e . \
    && useradd --system --uid 10001 --home-dir /data exness \
    && mkdir -p /data /keys && chown exness:exness /data /keys
COPY --from=web /src/web/dist/ web/dist/
USER exness
VOLUME ["/data"]
ENTRYPOINT ["exness"]
CMD ["--help"]
