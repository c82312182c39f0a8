#!/bin/sh
# install-group REQUIREMENTS UV_PLATFORM PYTHON_VERSION
# Runs in the `installer` stage, natively on the build platform: uv installs the target
# platform's wheels (hash-checked, no dependency resolution: the lock is the closure) into a
# venv at /opt/venv, the path the image's own venv has, so console scripts say
# #!/opt/venv/bin/python and .pyc files name their real sources. What the install added,
# without the venv's own files, becomes /layer for the image to COPY --link.
set -eu
requirements=$1 platform=$2 python_version=$3
if [ -s /run/secrets/ca.pem ]; then export SSL_CERT_FILE=/run/secrets/ca.pem; fi
if [ -s /run/secrets/pip_index_url ]; then
  UV_INDEX_URL=$(cat /run/secrets/pip_index_url)
  export UV_INDEX_URL
fi
uv pip install --python /opt/venv/bin/python --python-platform "$platform" \
  --python-version "$python_version" --only-binary :all: --no-deps --require-hashes \
  --compile-bytecode --link-mode copy --no-progress -r "$requirements"
# the interpreter links, activate scripts and pyvenv.cfg are the image's own venv's;
# .lock is uv's own, for the install above
xargs rm -f /opt/venv/.lock < /opt/venv-skeleton.txt
mv /opt/venv /layer
find /layer -depth -type d -empty -delete
