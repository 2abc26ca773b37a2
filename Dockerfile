# syntax=docker/dockerfile:1
# ChargeDesk Bot: one image for every process of the Procfile (release, web, worker, discord);
# compose.yaml runs them. The install is deploy/install.sh from the lock (requirements/server.txt),
# and tests/test_deployment.py replays this file's build stage with it in a fresh virtualenv,
# so CI exercises the image's install. Keep the build stage to ARG, ENV, WORKDIR, COPY and
# RUN deploy/install.sh: that test replays exactly those.
#
#   docker build -t chargedesk .
#   docker run --rm chargedesk chargedesk --version

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 VENV=/opt/chargedesk
WORKDIR /src
# The locked dependencies first: a layer that a change of the bot's code does not rebuild.
COPY requirements/server.txt requirements/server.txt
COPY deploy/install.sh deploy/install.sh
RUN sh deploy/install.sh "$VENV" deps
# The project: its package data holds the document fonts (bot/documents/fonts: Noto Sans and
# the Japanese ChargeDesk Gothic), the templates, migrations and translations.
COPY pyproject.toml README.md LICENSE ./
COPY bot bot
RUN sh deploy/install.sh "$VENV" project

FROM ${PYTHON_IMAGE} AS runtime
# No root at run time: a fixed uid/gid, so volumes can be owned ahead of time.
RUN groupadd --system --gid 10001 chargedesk \
 && useradd --system --uid 10001 --gid chargedesk --home-dir /var/lib/chargedesk \
      --create-home --shell /usr/sbin/nologin chargedesk \
 && mkdir -p /etc/chargedesk
COPY --from=build /opt/chargedesk /opt/chargedesk
ENV PATH=/opt/chargedesk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHARGEDESK_DATA_DIR=/var/lib/chargedesk \
    CHARGEDESK_LOGS__TO_FILE=false
WORKDIR /var/lib/chargedesk
USER 10001:10001
EXPOSE 8000
# The web process; compose.yaml gives worker, discord and release their own commands.
CMD ["chargedesk", "serve", "--host", "0.0.0.0", "--port", "8000"]
