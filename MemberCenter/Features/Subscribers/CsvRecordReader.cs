using System.Text;

namespace MemberCenter.Features.Subscribers;

/// <summary>One CSV record: its fields, the line it starts on (1-based), and whether it broke a rule of the format.</summary>
public sealed record CsvRecord(IReadOnlyList<string> Fields, int Line, string? Error)
{
    public bool IsBlank => Error is null && Fields.Count == 1 && Fields[0].Length == 0;
}

/// <summary>
/// A streaming RFC 4180 reader: comma-separated, fields optionally in double quotes ("" inside is one quote, and a
/// quoted field may span lines), CRLF or LF line ends. It holds one record at a time, and a record longer than
/// <see cref="MaxRecordChars"/> is reported as an error (its text dropped) rather than held, so memory stays bounded
/// whatever the upload holds.
/// </summary>
public sealed class CsvRecordReader(TextReader reader)
{
    public const int MaxRecordChars = 64 * 1024;

    private readonly char[] _buffer = new char[16 * 1024];
    private int _pos;
    private int _len;
    private int _line = 1;
    private bool _eof;

    public async ValueTask<CsvRecord?> ReadAsync(CancellationToken ct)
    {
        if (!await FillAsync(ct))
        {
            return null;
        }
        var startLine = _line;
        var fields = new List<string>();
        var field = new StringBuilder();
        var chars = 0;
        var tooLong = false;
        string? error = null;
        var inQuotes = false;
        var quoted = false; // the current field began with a quote
        var afterQuote = false; // a closing quote was read; only a comma or line end may follow

        void Append(char c)
        {
            if (++chars > MaxRecordChars)
            {
                tooLong = true;
                return;
            }
            field.Append(c);
        }

        void EndField()
        {
            fields.Add(tooLong ? "" : field.ToString());
            field.Clear();
            quoted = false;
            afterQuote = false;
        }

        while (await FillAsync(ct))
        {
            var c = _buffer[_pos++];
            if (inQuotes)
            {
                if (c == '"')
                {
                    if (!await FillAsync(ct) || _buffer[_pos] != '"')
                    {
                        inQuotes = false;
                        afterQuote = true;
                        continue;
                    }
                    _pos++;
                    Append('"');
                    continue;
                }
                if (c == '\n')
                {
                    _line++;
                }
                Append(c);
                continue;
            }
            switch (c)
            {
                case ',':
                    EndField();
                    continue;
                case '\r':
                    if (await FillAsync(ct) && _buffer[_pos] == '\n')
                    {
                        _pos++;
                    }
                    _line++;
                    EndField();
                    return Finish(fields, startLine, tooLong, error);
                case '\n':
                    _line++;
                    EndField();
                    return Finish(fields, startLine, tooLong, error);
                case '"' when field.Length == 0 && !quoted && !afterQuote:
                    inQuotes = true;
                    quoted = true;
                    continue;
                default:
                    if (afterQuote || c == '"')
                    {
                        error ??= "A quote inside a field must be doubled, and a quoted field must end at a comma or line end.";
                    }
                    Append(c);
                    continue;
            }
        }
        if (inQuotes)
        {
            error ??= "A quoted field is not closed before the end of the file.";
        }
        EndField();
        return Finish(fields, startLine, tooLong, error);
    }

    private static CsvRecord Finish(List<string> fields, int line, bool tooLong, string? error) =>
        new(fields, line, tooLong ? $"The record is longer than {MaxRecordChars} characters." : error);

    private async ValueTask<bool> FillAsync(CancellationToken ct)
    {
        if (_pos < _len)
        {
            return true;
        }
        if (_eof)
        {
            return false;
        }
        _len = await reader.ReadAsync(_buffer.AsMemory(), ct);
        _pos = 0;
        if (_len == 0)
        {
            _eof = true;
            return false;
        }
        return true;
    }
}
