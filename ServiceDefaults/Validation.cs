namespace Newsletter.ServiceDefaults;

/// <summary>Collects field errors keyed by the snake_case JSON name, for ValidationProblem answers.</summary>
public sealed class Validation
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

    public bool IsValid => _errors.Count == 0;

    public Validation Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var list))
        {
            _errors[field] = list = [];
        }
        list.Add(message);
        return this;
    }

    public Validation Required(string field, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            Add(field, $"The {field} field is required.");
        }
        return this;
    }

    public Validation MaxLength(string field, string? value, int max)
    {
        if (value?.Length > max)
        {
            Add(field, $"The {field} must be at most {max} characters.");
        }
        return this;
    }

    public Dictionary<string, string[]> Errors => _errors.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
}
