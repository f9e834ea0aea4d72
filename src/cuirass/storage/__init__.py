"""Where state is kept: the list of tables (`schema`) and the migrations that build and upgrade them (`migrate`).

Kept import-free on purpose: `schema` imports every table-owning store, so importing the package must not.
"""
