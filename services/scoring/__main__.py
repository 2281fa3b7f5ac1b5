from services.scoring.service import SPEC
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC)
