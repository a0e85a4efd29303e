# Jant in a container (see the README's "Docker" section):
#   docker build -t jant .
#   docker run -d --name jant --env-file .env -v jant-data:/data jant
# A gateway and workers on Postgres: docker-compose.yml (the README's "Growing past one process").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    JANT_DATA_DIR=/data \
    JANT_ENV=prod

RUN useradd --create-home --uid 10001 jant \
    && mkdir -p /data /app \
    && chown jant:jant /data
WORKDIR /app

# Optional extras, comma-separated: `--build-arg JANT_EXTRAS=durable,postgres` for the workers and the
# gateway of docker-compose.yml (DBOS and Postgres). Empty by default: the plain image is unchanged.
ARG JANT_EXTRAS=""

# The dependencies first, from pyproject.toml alone: an edit to the code reuses this layer.
COPY pyproject.toml ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e.strip() for e in os.environ.get('JANT_EXTRAS', '').split(',') if e.strip()]; print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"

# Then the code, installed without touching the dependencies. Owned by root: the bot cannot change it.
COPY README.md LICENSE ./
COPY bot ./bot
COPY pipeline ./pipeline
COPY storage ./storage
RUN pip install --no-deps . && rm -rf build

USER jant
VOLUME ["/data"]
# `docker run --env-file .env` overrides the image's ENV, and .env.example sets JANT_DATA_DIR=./data:
# the data directory is set again here, for every command, so it is always the /data volume.
ENTRYPOINT ["/usr/bin/env", "JANT_DATA_DIR=/data"]
CMD ["jant", "bot"]
# Healthy while the bot is connected to Discord's gateway (bot/heartbeat.py), not merely running.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/usr/bin/env", "JANT_DATA_DIR=/data", "python", "-m", "bot.heartbeat"]
