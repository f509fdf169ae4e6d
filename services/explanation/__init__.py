"""SHAP and attention explanations of decisions, turned into plain-language reason codes."""
