# A slim image that runs the gateway. The web UI's build is already inside the Python
# package, so no Node is needed here.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY migrations ./migrations
# With the PostgreSQL driver and the OTLP exporter (docs/deploy/compose.yaml uses both).
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres,otlp]"

FROM python:3.11-slim
RUN useradd --create-home --uid 1000 spanlab && mkdir /data && chown spanlab /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "spanlab[postgres,otlp]" \
    && rm -rf /wheels
USER spanlab
ENV SPANLAB_DB=/data/spanlab.db \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
CMD ["spanlab", "serve", "--host", "0.0.0.0", "--port", "8080"]
