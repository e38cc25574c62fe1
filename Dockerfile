# The demo's image: the package, gunicorn and the examples. Used by docker-compose.yml for the web app and the worker.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY flask_multi_redis ./flask_multi_redis
RUN pip install --no-cache-dir ".[gevent]" "gunicorn>=22"
COPY examples ./examples

ENV PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["gunicorn", "-k", "gevent", "-w", "4", "-b", "0.0.0.0:8000", "examples.webapp:create_app()"]
