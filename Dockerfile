# The chat bot daemon. Build: docker build -t chatbot .   (GPU: --build-arg TF_PACKAGE="tensorflow[and-cuda]==2.21.0")
# Run:   docker run -e DISCORD_TOKEN=... -v chatbot-data:/data -p 127.0.0.1:8080:8080 chatbot
FROM python:3.11-slim

ARG TF_PACKAGE=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    CHATBOT_DB=/data/chatbot.sqlite3 CHATBOT_HTTP_HOST=0.0.0.0 TF_CPP_MIN_LOG_LEVEL=2

# KoNLPy's Okt runs in a Java VM.
RUN apt-get update && apt-get install -y --no-install-recommends default-jre-headless \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 chatbot && mkdir -p /data && chown chatbot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY chatbot chatbot
COPY core_model core_model
COPY bot bot
COPY adapters adapters
COPY scripts scripts
COPY data data
COPY models models
COPY chatbot.example.toml ./
RUN pip install . \
    && if [ -n "$TF_PACKAGE" ]; then pip uninstall -y tensorflow-cpu && pip install "$TF_PACKAGE"; fi

USER chatbot
VOLUME ["/data"]
EXPOSE 8080 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"
CMD ["chatbot", "serve"]
