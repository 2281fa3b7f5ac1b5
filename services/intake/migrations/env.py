from services.intake.models import Base
from shared.db import run_env

run_env(Base.metadata)
