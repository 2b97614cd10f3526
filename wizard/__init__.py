"""The faces of tfwizard: the command line entry point and (soon) the interactive wizard.

UI only: everything about models lives in `engine`. Nothing here imports TensorFlow.
"""
