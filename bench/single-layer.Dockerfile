# The old guide's shape, for `invoke bench` only: the same base, the same OS packages and the
# same lock as ai-base, but one `pip install --no-cache-dir -r` in one layer, so any pin bump
# rebuilds and re-pushes all of it. Never pushed under a tag anyone pulls.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG VARIANT=cpu
ARG OS_PACKAGES=""
ARG TARGETOS
ARG TARGETARCH
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential gcc g++ git curl ca-certificates ${OS_PACKAGES} \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}
# hadolint ignore=DL3022
COPY --from=locks ${VARIANT}-${TARGETOS}-${TARGETARCH}.txt /tmp/requirements.txt
RUN --mount=type=secret,id=ca_bundle,target=/run/secrets/ca.pem \
    if [ -s /run/secrets/ca.pem ]; then export PIP_CERT=/run/secrets/ca.pem; fi \
 && pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements.txt
CMD ["python"]
