# The options every ripdep.ripdep module shares, documented once (extends_documentation_fragment).


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  executable:
    description: The ripdep command on the target.
    type: str
    default: ripdep
"""
