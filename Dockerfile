# The fleet emulator as an image: `docker build -t fleet-emulator .`, then `docker run -p 50051:50051
# fleet-emulator`. Arguments after the image name replace CMD, e.g.
# `docker run -v "$PWD/scenarios:/scenarios" ... fleet-emulator serve --scenario /scenarios/mine.yaml`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && cd / && rm -rf /src \
    && useradd --system --no-create-home --uid 10001 emulator

WORKDIR /
USER emulator
EXPOSE 50051 8080

# Healthy only when the gRPC health protocol itself answers SERVING (not merely an open port).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; c = grpc.insecure_channel('127.0.0.1:' + os.environ.get('FLEET_EMULATOR_PORT', '50051')); r = g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=3); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]

# SIGTERM (docker stop) stops the server gracefully: health turns NOT_SERVING, in-flight calls get 5 s.
ENTRYPOINT ["fleet-emulator"]
CMD ["serve"]
