"""The floor: a bare Flask hello, served by gunicorn under the same worker model as the gateway."""
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello"
