#!/bin/sh
# install-group REQUIREMENTS UV_PLATFORM PYTHON_VERSION EPOCH
# Runs in the `installer` stage, natively on the build platform: uv installs the target
# platform's wheels (hash-checked, no dependency resolution: the lock is the closure) into a
# venv at /opt/venv, the path the image's own venv has, so console scripts say
# #!/opt/venv/bin/python and .pyc files name their real sources. What the install added,
# without the venv's own files, becomes /layer/opt/venv for the image to COPY --link to /.
#
# The layer is reproducible: the same requirements give the same bytes on any builder, any
# day, so a cold builder re-pushes nothing for an unchanged group. Hence .pyc files hashed
# from their sources, never stamped with the install's clock (unchecked: the image's files
# do not change; pip removes a package's .pyc with it), a fixed string-hash seed for the
# compiler, and every path's mtime set to EPOCH (a constant, not the commit's time: a group
# a commit did not change must keep its digest). /layer holds opt/ and opt/venv/ itself:
# parents that COPY would create get the copy's clock.
set -eu
requirements=$1 platform=$2 python_version=$3 epoch=$4
if [ -s /run/secrets/ca.pem ]; then export SSL_CERT_FILE=/run/secrets/ca.pem; fi
if [ -s /run/secrets/pip_index_url ]; then
  UV_INDEX_URL=$(cat /run/secrets/pip_index_url)
  export UV_INDEX_URL
fi
PYC_INVALIDATION_MODE=UNCHECKED_HASH PYTHONHASHSEED=0 \
  uv pip install --python /opt/venv/bin/python --python-platform "$platform" \
  --python-version "$python_version" --only-binary :all: --no-deps --require-hashes \
  --compile-bytecode --link-mode copy --no-progress -r "$requirements"
# the interpreter links, activate scripts and pyvenv.cfg are the image's own venv's;
# .lock is uv's own, for the install above
xargs rm -f /opt/venv/.lock < /opt/venv-skeleton.txt
mkdir -p /layer/opt
mv /opt/venv /layer/opt/venv
find /layer -depth -mindepth 1 -type d -empty -delete
find /layer -exec touch -h -d "@$epoch" {} +
