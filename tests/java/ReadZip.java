// Reads every entry of a ZIP archive with Java's two readers and prints,
// one line per entry, the reader, the size and the SHA-256 of its bytes,
// and the name (last, as it may hold tabs' neighbours but never a newline):
//
//     zipfile<TAB>size<TAB>sha256<TAB>name
//     stream<TAB>size<TAB>sha256<TAB>name
//
// Run as a single-file program: `java tests/java/ReadZip.java ARCHIVE`.
// The reader tests compare these lines with the bytes the archive should
// hold. Any exception (a bad CRC, a truncated entry) exits non-zero.

import java.io.BufferedInputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Enumeration;
import java.util.HexFormat;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipInputStream;

public class ReadZip {
    public static void main(String[] args) throws Exception {
        String path = args[0];
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        byte[] buffer = new byte[1 << 20];
        try (ZipFile zip = new ZipFile(path, StandardCharsets.UTF_8)) {
            Enumeration<? extends ZipEntry> entries = zip.entries();
            while (entries.hasMoreElements()) {
                ZipEntry entry = entries.nextElement();
                try (InputStream in = zip.getInputStream(entry)) {
                    print(out, "zipfile", entry.getName(), in, buffer);
                }
            }
        }
        // ZipInputStream reads local headers only, as a download stream would:
        // it checks each entry's CRC and sizes as it reaches the entry's end.
        try (ZipInputStream zin = new ZipInputStream(
                new BufferedInputStream(new FileInputStream(path), 1 << 20), StandardCharsets.UTF_8)) {
            ZipEntry entry;
            while ((entry = zin.getNextEntry()) != null) {
                print(out, "stream", entry.getName(), zin, buffer);
            }
        }
        out.flush();
    }

    private static void print(PrintStream out, String reader, String name, InputStream in, byte[] buffer)
            throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        long size = 0;
        int n;
        while ((n = in.read(buffer)) > 0) {
            sha.update(buffer, 0, n);
            size += n;
        }
        out.println(reader + "\t" + size + "\t" + HexFormat.of().formatHex(sha.digest()) + "\t" + name);
    }
}
