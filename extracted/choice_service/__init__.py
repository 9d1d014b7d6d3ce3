"""The choice service: the choices of each question, on its own database, with a local projection of questions."""
