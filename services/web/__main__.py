"""`python -m services.web`: the pages people use."""

from services.web.service import serve

if __name__ == "__main__":
    serve()
