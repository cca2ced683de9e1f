# Empathy Copilot server image: onnxruntime serving, no torch, runs offline.
FROM python:3.11-slim

ENV COPILOT_DEMO=false PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 PORT=8000 COPILOT_INSTANCE_DIR=/app/instance

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY copilot/ copilot/
COPY prompts/ prompts/
COPY index/ index/
COPY wsgi.py .

RUN useradd --system --uid 10001 --home-dir /app copilot && mkdir -p /app/instance && chown copilot /app/instance
# The instance folder (the embedded stores without Redis; the generated secret.key without COPILOT_SECRET) outlives
# the container. Declared after the chown: a new volume starts with this folder's owner, and later RUN changes here
# would be discarded.
VOLUME /app/instance
USER copilot

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/readyz', timeout=2)"
# One gevent worker per container (Socket.IO sessions are sticky to a process): each open WebSocket costs
# two greenlets and a session (about 35 KB), not a thread, and the model runs on a native thread beside the
# event loop. CONNECTIONS caps the connections a container takes. Scale out with more containers sharing REDIS_URL
# behind nginx: deploy/docker-compose.yml and deploy/nginx.conf (README "Deploying"). COPILOT_SECRET is required
# when scaling out: at least 32 bytes and the same in every container, or each container makes its own secret and
# refuses the others' tokens (the server refuses to start with REDIS_URL set and no COPILOT_SECRET). The Redis
# behind REDIS_URL must run with maxmemory set, maxmemory-policy noeviction (any other policy may evict the library
# or live conversations) and appendonly yes: deploy/redis.conf (README "Running Redis"); /readyz reports its
# policy. Behind one proxy hop (deploy/nginx.conf), set COPILOT_PROXY_HOPS=1.
CMD ["sh", "-c", "exec gunicorn -k gevent -w 1 --worker-connections ${CONNECTIONS:-4000} -b ${HOST}:${PORT} --timeout 0 wsgi:app"]
