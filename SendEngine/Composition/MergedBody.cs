namespace SendEngine.Composition;

/// <summary>
/// One recipient's body: a parsed body template and the recipient's values, rendered in the form a transport asks
/// for. The SMTP transport writes a 7bit part straight from the template's literal bytes and the values
/// (<see cref="PrerenderedBody"/>); a part that has to be quoted-printable, and a transport that takes text (Tencent
/// SES), read <see cref="Text"/>, merged once on first use.
/// </summary>
public sealed class MergedBody
{
    private readonly MergeTemplate _template;
    private readonly string[] _values;
    private string? _text;

    internal MergedBody(MergeTemplate template, string[] values)
    {
        _template = template;
        _values = values;
    }

    /// <summary>The merged text, CRLF line endings.</summary>
    public string Text => _text ??= _template.Concat(_values);

    /// <summary>The octets of the part as 7bit content (ending with CRLF), or -1 when it has to be quoted-printable.</summary>
    internal int SevenBitLength() => _template.SevenBitLength(_values);

    /// <summary>Writes the 7bit content <see cref="SevenBitLength"/> measured; returns the octets written.</summary>
    internal int WriteSevenBit(Span<byte> target) => _template.WriteSevenBit(_values, target);
}
