namespace NewsletterConsole.Pages;

public sealed class IndexModel : ConsolePage
{
    public void OnGet()
    {
    }
}
