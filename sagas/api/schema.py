"""Touches to the generated OpenAPI document that drf-spectacular cannot infer."""


def allow_empty_query_values(result, generator, request, public):
    """Optional query parameters accept an empty value (`?state=&workflow=`) meaning "any".

    HTML forms send every field, filled or not; the API treats them alike.
    """
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result
