# Jant in a container: `docker build -t jant . && docker run --env-file .env -v jant-data:/data jant`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    JANT_DATA_DIR=/data \
    JANT_ENV=prod

RUN useradd --create-home --uid 10001 jant \
    && mkdir -p /data /app \
    && chown jant:jant /data /app
WORKDIR /app

COPY --chown=jant:jant pyproject.toml README.md ./
COPY --chown=jant:jant bot ./bot
COPY --chown=jant:jant pipeline ./pipeline
COPY --chown=jant:jant storage ./storage
RUN pip install . && python -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"

USER jant
VOLUME ["/data"]
HEALTHCHECK --interval=60s --timeout=20s CMD ["jant", "doctor"]
CMD ["jant", "bot"]
