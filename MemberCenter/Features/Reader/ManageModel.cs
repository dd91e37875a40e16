namespace MemberCenter.Features.Reader;

public enum ManageRowKind { Text, Select, Checkboxes, Boolean }

public sealed record ManageOption(string Value, string Label, bool Selected);

/// <summary>
/// One control of the preference centre. <paramref name="SeenName"/> (fields of a list with defined fields) tells the
/// save which fields the form showed, so an unchecked box means false/none rather than "not on the page".
/// </summary>
public sealed record ManageRow(ManageRowKind Kind, string Name, string Label, string? Value, bool Required, IReadOnlyList<ManageOption> Options, string? SeenName);

/// <summary>Status is the wire name (pending, confirmed, unsubscribed).</summary>
public sealed record ManageModel(string ListName, string MaskedEmail, string Status, string Token, bool Saved, string? Error, IReadOnlyList<ManageRow> Rows);
