using System.Buffers;
using System.Security.Cryptography;

namespace SendEngine.Transports;

/// <summary>DKIM's "relaxed" canonicalization (RFC 6376 3.4.2 and 3.4.4) of bytes as they go on the wire.</summary>
internal static class DkimCanonical
{
    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\t';

    /// <summary>
    /// One header field ("Name: value", possibly folded, ending with CRLF) as "name:value CRLF": the name in lower
    /// case, the value unfolded, each run of spaces and tabs one space, none at either end of the value.
    /// </summary>
    /// <returns>The number of bytes written to <paramref name="target"/> (at most the field's length).</returns>
    public static int Header(ReadOnlySpan<byte> field, Span<byte> target)
    {
        var colon = field.IndexOf((byte)':');
        var at = 0;
        foreach (var c in field[..colon].TrimEnd(" \t"u8))
        {
            target[at++] = c is >= (byte)'A' and <= (byte)'Z' ? (byte)(c + 32) : c;
        }
        target[at++] = (byte)':';
        var pendingSpace = false;
        var started = false;
        foreach (var c in field[(colon + 1)..])
        {
            if (c is (byte)'\r' or (byte)'\n')
            {
                continue;
            }
            if (IsSpace(c))
            {
                pendingSpace = started;
                continue;
            }
            if (pendingSpace)
            {
                target[at++] = (byte)' ';
                pendingSpace = false;
            }
            target[at++] = c;
            started = true;
        }
        target[at++] = (byte)'\r';
        target[at++] = (byte)'\n';
        return at;
    }

    /// <summary>SHA-256 of the body (CRLF line endings) canonicalized: spaces as in <see cref="Header"/> within each
    /// line and none at its end, and no empty lines at the end of the body.</summary>
    public static byte[] BodyHash(ReadOnlySpan<byte> body)
    {
        // The usual body (no tabs, double spaces or trailing spaces) is its own canonical form but for empty lines at the end.
        if (body.IndexOf((byte)'\t') < 0 && body.IndexOf("  "u8) < 0 && body.IndexOf(" \r\n"u8) < 0 && (body.IsEmpty || body[^1] != (byte)' '))
        {
            return SHA256.HashData(TrimEmptyLines(body));
        }
        var buffer = ArrayPool<byte>.Shared.Rent(body.Length + 2);
        try
        {
            var at = 0;
            while (!body.IsEmpty)
            {
                var end = body.IndexOf("\r\n"u8);
                var line = end < 0 ? body : body[..end];
                var pendingSpace = false;
                foreach (var c in line)
                {
                    if (IsSpace(c))
                    {
                        pendingSpace = true;
                        continue;
                    }
                    if (pendingSpace)
                    {
                        buffer[at++] = (byte)' ';
                        pendingSpace = false;
                    }
                    buffer[at++] = c;
                }
                buffer[at++] = (byte)'\r';
                buffer[at++] = (byte)'\n';
                body = end < 0 ? [] : body[(end + 2)..];
            }
            return SHA256.HashData(TrimEmptyLines(buffer.AsSpan(0, at)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Without the empty lines at the end; a non-empty body keeps (or gets) one final CRLF.</summary>
    private static ReadOnlySpan<byte> TrimEmptyLines(ReadOnlySpan<byte> body)
    {
        while (body.EndsWith("\r\n\r\n"u8))
        {
            body = body[..^2];
        }
        if (body.SequenceEqual("\r\n"u8))
        {
            return [];
        }
        // A body that does not end with CRLF: the transport never writes one (every part and boundary ends with CRLF).
        return body;
    }
}
