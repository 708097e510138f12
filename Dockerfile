# The image docs/kubernetes.md runs: the opentrain-async command line with the Redis
# journal and orjson, built from this source tree (no registry has the package yet).
#   docker build -t opentrain-async:0.1.0 .
#   docker run --rm -e OT_API_TOKEN -v "$PWD/jobs:/jobs:ro" opentrain-async:0.1.0 bulk /jobs/batch.jsonl
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY opentrain_async ./opentrain_async
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels ".[cli,redis,speed]"

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 bulk
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels \
        "opentrain-async[cli,redis,speed]" && rm -rf /wheels
USER bulk
# The default journal directory when no --journal is given (mount a volume to keep it).
ENV XDG_STATE_HOME=/home/bulk/.local/state PYTHONUNBUFFERED=1
ENTRYPOINT ["opentrain-async"]
CMD ["--help"]
