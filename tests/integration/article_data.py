"""The article's ViewDefinition (../shared/article.md), shared by the tests that follow it."""

PATIENT_FLAT_VIEW = {
    "resourceType": "ViewDefinition", "id": "patient_flat", "name": "patient_flat",
    "resource": "Patient",
    "select": [{"column": [
        {"name": "id", "path": "id"},
        {"name": "ts", "path": "getAidboxTs()"},
        {"name": "gender", "path": "gender"},
        {"name": "birth_date", "path": "birthDate"},
        {"name": "family_name", "path": "name.where(use = 'official').family.first()"},
        {"name": "given_name", "path": "name.where(use = 'official').given.first()"},
    ]}],
}
