# One image for the worker, the connectors and the dashboard; compose.yaml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY pipeline pipeline
COPY connectors connectors
COPY classifiers classifiers
COPY flows flows
COPY dashboards dashboards
RUN pip install --no-cache-dir . && TRIAGE_CACHE=/tmp/cache triage models vectors && rm -rf /tmp/cache
USER nobody
ENTRYPOINT ["triage"]
