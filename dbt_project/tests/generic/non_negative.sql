{% test non_negative(model, column_name, where_determinant=none) %}
select * from {{ model }}
where {{ column_name }} < 0
{% if where_determinant %} and determinant = '{{ where_determinant }}'{% endif %}
{% endtest %}
