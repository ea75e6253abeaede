"""The ranking's stages, in the order the Ranker runs them:

features -> scores -> spectrum -> bootstrap -> aggregate -> validation

Each module has typed frozen inputs and outputs and no shared state. The stages that do heavy work (features,
scores, spectrum, bootstrap) turn their input into independent :class:`analyzer.executors.Task` s whose functions
are module-level and take and return small picklable values (feature keys, not arrays), so any executor (in
process, or Ray) runs them; aggregate and validation are arithmetic on the driver.
"""
