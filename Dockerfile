# One image for the worker, the connectors, the dashboard and the flows; compose.yaml picks the
# command. BASE is the official Python image in production; `make compose-smoke` builds on a
# Debian base made with debootstrap (docker/base), as no image registry is reachable there.
ARG BASE=python:3.11-slim
FROM ${BASE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 VIRTUAL_ENV=/opt/triage PATH=/opt/triage/bin:$PATH
RUN python3 -m venv /opt/triage
WORKDIR /src
# The dependencies first, exactly as locked (tests/test_lock.py keeps the lock in step with
# pyproject.toml; the models refuse another scikit-learn), so code changes reuse this layer.
COPY pyproject.toml requirements.lock ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > runtime.txt \
    && pip install -q -c requirements.lock -r runtime.txt
COPY README.md LICENSE ./
COPY pipeline pipeline
COPY connectors connectors
COPY classifiers classifiers
COPY flows flows
COPY dashboards dashboards
RUN pip install -q --no-deps . \
    && { python3 -c "from classifiers.vectors import NAME, installed_path as p; assert p(NAME).is_file()" \
         || { TRIAGE_CACHE=/tmp/cache triage models vectors && rm -rf /tmp/cache; }; }
# A user of its own, not root: the data dir (the embedded store, trend reports), a copy of the
# model registry it may promote into, and Prefect's home are its own and writable.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/triage triage \
    && mkdir -p /run/secrets /var/lib/triage/prefect \
    && cp -r "$(python3 -c 'import classifiers, pathlib; print(pathlib.Path(classifiers.__file__).parent / "models")')" \
        /var/lib/triage/models \
    && chown -R triage:triage /var/lib/triage \
    && rm -rf /src
ENV HOME=/home/triage TRIAGE_DATA_DIR=/var/lib/triage TRIAGE_MODELS_DIR=/var/lib/triage/models \
    PREFECT_HOME=/var/lib/triage/prefect
WORKDIR /var/lib/triage
USER triage
ENTRYPOINT ["triage"]
