# drbot: one image, three processes (docker run IMAGE bot | worker | scheduler).
#
# Build (Terraform is downloaded at build time and checked against the SHA-256 you pass; take it
# from https://releases.hashicorp.com/terraform/<version>/terraform_<version>_SHA256SUMS, the line
# for linux_<arch>.zip):
#
#   docker build -t drbot \
#     --build-arg TERRAFORM_VERSION=1.9.8 \
#     --build-arg TERRAFORM_SHA256=<sha256 of terraform_1.9.8_linux_amd64.zip> .
#
# Stages: `build` makes a virtualenv with drbot and its dependencies (ansible-core included);
# `terraform` fetches and verifies the Terraform binary; the final stage copies both onto a clean
# slim Python with only the runtime tools (OpenSSH client for Ansible, git for the IaC revision
# check, tini as PID 1 to reap the process trees of playbooks), and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/drbot
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY adapters ./adapters
COPY docs ./docs
COPY examples ./examples
ARG DRBOT_EXTRAS=slack,discord
RUN /opt/drbot/bin/pip install --no-cache-dir --disable-pip-version-check ".[${DRBOT_EXTRAS}]"

FROM ${PYTHON_IMAGE} AS terraform
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TERRAFORM_VERSION
ARG TERRAFORM_SHA256
ARG TARGETARCH=amd64
WORKDIR /tmp/terraform
RUN if [ -z "${TERRAFORM_VERSION}" ] || [ -z "${TERRAFORM_SHA256}" ]; then \
      echo "set --build-arg TERRAFORM_VERSION=<x.y.z> and --build-arg TERRAFORM_SHA256=<sha256 of terraform_<x.y.z>_linux_${TARGETARCH}.zip> (see the top of this Dockerfile)" >&2; \
      exit 1; \
    fi \
 && python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "terraform.zip")' \
      "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_${TARGETARCH}.zip" \
 && echo "${TERRAFORM_SHA256}  terraform.zip" | sha256sum --check --strict - \
 && python -m zipfile -e terraform.zip /opt/terraform \
 && chmod 0755 /opt/terraform/terraform

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="drbot" \
      org.opencontainers.image.description="Disaster-recovery chat-ops bot for Proxmox, K3s, Flux, Longhorn and CloudNative-PG" \
      org.opencontainers.image.licenses="Apache-2.0"
# Debian's security updates replace these versions in the archive, so pins would break rebuilds;
# the base image tag is what fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-client git tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 drbot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/drbot --create-home --shell /usr/sbin/nologin drbot \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/drbot/worker
COPY --from=build /opt/drbot /opt/drbot
COPY --from=terraform /opt/terraform/terraform /usr/local/bin/terraform
ENV PATH=/opt/drbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/drbot \
    ANSIBLE_HOME=/tmp/ansible \
    ANSIBLE_LOCAL_TEMP=/tmp/ansible/tmp \
    DRBOT_HTTP_HOST=0.0.0.0 \
    DRBOT_HTTP_PORT=8080
USER 10001:10001
WORKDIR /home/drbot
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "drbot"]
CMD ["bot"]
