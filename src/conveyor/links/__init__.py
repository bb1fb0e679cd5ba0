"""Table → queue links: record writes publish messages through a transactional outbox."""
