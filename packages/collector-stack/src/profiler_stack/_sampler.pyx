def hello():
    return 42
