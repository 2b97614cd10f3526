"""The faces of tfwizard: the command line entry point, the Textual wizard and its
plain-prompt twin (--plain).

UI only: everything about models lives in `engine`. Nothing here imports TensorFlow.
"""
