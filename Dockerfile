# reconciler: the agent as a container. Build: docker build -t reconciler .
# Run on the bastion with its instance role (no credentials baked in):
#   docker run -d --name reconciler -p 9090:9090 \
#     -e RECONCILER_GIT_URL=https://git.example.com/ops/stack.git -e REDIS_AUTH_TOKEN \
#     reconciler specs
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
COPY schemas ./schemas
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
# git follows the spec repository; ca-certificates verifies AWS, git and Redis TLS.
# Versions are left to the base image's security updates rather than pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin reconciler
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
WORKDIR /home/reconciler
ENV PYTHONUNBUFFERED=1 \
    RECONCILER_STATE_DIR=/home/reconciler/.cache/reconciler \
    RECONCILER_HTTP_PORT=9090 \
    RECONCILER_HTTP_HOST=0.0.0.0
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "reconciler.agent.probe"]
ENTRYPOINT ["reconciler", "run"]
CMD ["specs"]
