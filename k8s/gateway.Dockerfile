# The gateway image for k8s/ (nimbus serve). Build from the project root:
#   docker build -f k8s/gateway.Dockerfile -t registry.example.com/nimbus/gateway:0.1.0 .
# The manifests run it as uid 10001 with a read-only root: it writes only /data and /tmp.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
COPY pyproject.toml README.md /src/
COPY gateway /src/gateway
COPY invoker /src/invoker
RUN pip install --no-cache-dir /src && rm -rf /src
USER 10001:10001
ENV HOME=/tmp
ENTRYPOINT ["nimbus"]
